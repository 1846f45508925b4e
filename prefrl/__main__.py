"""`python -m prefrl ...` is the `prefrl` command."""

import sys

from prefrl.runs.cli import main

sys.exit(main())
