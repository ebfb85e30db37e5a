"""``python -m runestone``: the same as the ``runestone`` command."""

from runestone.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
