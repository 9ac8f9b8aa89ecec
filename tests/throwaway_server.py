"""`python tests/throwaway_server.py --port N ...`: backend/app.py with one more job option, declared here.

The dashboard's browser test starts it (tests/servers.start_app(program=...)) to prove that an option declared
once on the server reaches the page's form with no change to the page: its control, range, default, label and
help all come from GET /models."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.jobconfig import register_option  # noqa: E402
from backend.options import Option  # noqa: E402

THROWAWAY = Option(
    "throwaway_knob",
    "number",
    default=0.25,
    minimum=0,
    maximum=0.5,
    help="a throwaway option",
    group="training",
    label="Throwaway knob",
)


def main() -> None:
    with register_option(THROWAWAY):
        from backend.app import main as app_main

        app_main()


if __name__ == "__main__":
    main()
