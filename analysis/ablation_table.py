"""The ablation table of the method from stored results (mean, std, seeds, gain per setting; per-class IoU).

    python analysis/ablation_table.py runs/v2/baselines runs/v2/ladder --out docs/results/v2/ablation.md

The code is symda.reports.ablation_table (the sweeps call it in process when they finish); this is its
command line (--help lists every flag).
"""

import sys

from symda.reports.ablation_table import main

if __name__ == "__main__":
    sys.exit(main())
