"""Evaluation: metrics, modality ablation, robustness, reports and plots.

A multimodal model is judged on more than accuracy. `evaluate` runs a model on
a labelled `tf.data` dataset and answers: how good is it (per-class metrics,
ROC/PR-AUC, calibration), which modality does it rely on (ablation), how does
it cope when inputs go missing (robustness), how does it weigh its inputs
(fusion weights), and does fusing beat a single modality (baselines). Results
go to `metrics.json`, `report.md`, `report.html`, PNG plots and TensorBoard.

One concern per module:
    metrics      classification metrics (from scikit-learn where it has them)
    calibration  expected calibration error, reliability-diagram data
    predict      running a model on in-memory inputs; finding its head
    robustness   modality ablation, missing-modality robustness, fusion weights
    plots        the report's figures
    report       report.md, report.html, metrics.json, the results table
    tensorboard  results as TensorBoard scalars and images
    callbacks    ConfusionMatrixCallback, for training
    evaluate     `evaluate`, which runs all of the above
"""

from mmkeras.evaluation.calibration import NUM_CALIBRATION_BINS, calibration
from mmkeras.evaluation.confusion_matrix_callback import ConfusionMatrixCallback
from mmkeras.evaluation.evaluate import evaluate
from mmkeras.evaluation.metrics import (
    LOWER_IS_BETTER,
    average_precision,
    classification_metrics,
    confusion_matrix,
    default_headline,
    roc_auc,
    roc_curve,
    sensitivity_at_specificity,
)
from mmkeras.evaluation.plots import confusion_matrix_figure
from mmkeras.evaluation.predict import model_predict_fn
from mmkeras.evaluation.report import comparison_rows, format_results_table, json_clean
from mmkeras.evaluation.robustness import (
    DEFAULT_ROBUSTNESS_PROBABILITIES,
    fusion_weights,
    mark_missing,
    missing_modality_robustness,
    modality_ablation,
    sample_missing_mask,
)
