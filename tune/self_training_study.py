"""The self-training study: recipes of pseudo-label self-training on prior work's single-path row
(BDL-like) against the same row without it (CyCADA-like), and the headroom rows that read the target
labels, as one Ray Tune grid; then its tables (docs/results/v2/self_training.md).

    python tune/self_training_study.py                                  # screen preset, seed 0
    python tune/self_training_study.py --preset ladder --rows cycada_like bdl_like --seeds 0 1 2

Rows and presets: configs/study/self_training.yaml. Every flag: --help
(symda/sweeps/self_training.py).
"""

import sys

from symda.sweeps.self_training import main

if __name__ == "__main__":
    sys.exit(main())
