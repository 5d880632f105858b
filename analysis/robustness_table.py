"""Single path against the symmetric pair: the spread of the final mIoU over the self-training
study's grid of lambda_adv x quantile.

    python analysis/robustness_table.py runs/v2/self_training/screen runs/v2/self_training/screen_pair \
        --out docs/results/v2/robustness.md

The code is symda.reports.robustness; this is its command line.
"""

import sys

from symda.reports.robustness import main

if __name__ == "__main__":
    sys.exit(main())
