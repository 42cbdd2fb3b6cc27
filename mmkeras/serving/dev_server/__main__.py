"""`python -m mmkeras.serving.dev_server`: the same as `mmkeras serve`."""

from mmkeras.serving.dev_server.server import main

if __name__ == "__main__":
    raise SystemExit(main())
