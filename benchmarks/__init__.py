"""The benchmarks of mmkeras (see README.md here); `python -m benchmarks` runs the ratio figures."""
