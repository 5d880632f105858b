"""The validator study: every (variant, seed) cell of configs/study/validators.yaml as one Ray Tune grid,
then its points (F_T's evaluations, each scored by every validator and by its true mIoU) and its table.

    python tune/validator_study.py                              # everything into runs/study/validators/
    python tune/validator_study.py --seeds 0 --variants base no_adv
    python analysis/validator_study.py runs/study/validators --out docs/results/validators

Finished cells are kept, so an interrupted study resumes. Every flag: --help (symda/sweeps/study.py).
"""

import sys

from symda.sweeps.study import main

if __name__ == "__main__":
    sys.exit(main())
