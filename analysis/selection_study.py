"""The selection study's report: validators among configurations at equal progress, per sweep kind.

    python analysis/selection_study.py runs/study/selection_* --out docs/results/selection \
        --package-file symda/select/selection.json

The code is symda.reports.selection_study; this is its command line (--help lists every flag).
"""

import sys

from symda.reports.selection_study import main

if __name__ == "__main__":
    sys.exit(main())
