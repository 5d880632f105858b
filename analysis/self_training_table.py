"""The self-training study's recipe and headroom tables from its run folders.

    python analysis/self_training_table.py runs/v2/self_training/screen --out docs/results/v2/self_training_screen.md

The code is symda.reports.self_training; this is its command line.
"""

import sys

from symda.reports.self_training import main

if __name__ == "__main__":
    sys.exit(main())
