"""The validator study's table and plots: how well each label-free validator picks among the study's points.

    python analysis/validator_study.py runs/study/validators [--out DIR] [--package-file symda/select/study.json]

The code is symda.reports.validator_study (the sweeps call it in process when they finish); this is its
command line (--help lists every flag).
"""

import sys

from symda.reports.validator_study import main

if __name__ == "__main__":
    sys.exit(main())
