"""Report of one sweep: the metric against each parameter, their importance, the best trial's classes, the validators.

    python analysis/sweep_report.py runs/sweeps/threshold-20261127-031500 [--out DIR] [--baseline RUN]

The code is symda.reports.sweep_report (the sweeps call it in process when they finish); this is its
command line (--help lists every flag).
"""

import sys

from symda.reports.sweep_report import main

if __name__ == "__main__":
    sys.exit(main())
