"""The method's ablation ladder on SynthCity as one Ray Tune grid, then its table.

Rows (configs/synthcity/): source_only, translated_source, oracle (`symda train`) and adversarial_only,
translation_adversarial, bdl_like, symmetric_prob_pseudo, full (`symda run`), times seeds 0 1 2 (each
seed its own SynthCity, data/synthcity-s<seed>). Finished runs are kept, so an interrupted grid resumes.

    python tune/run_ablation.py                                    # everything into runs/ablation-v2/
    python tune/run_ablation.py --rows full bdl_like --seeds 0     # a part of it
    python analysis/ablation_table.py runs/ablation-v2 --out docs/results/v2/ablation.md

Every flag: --help (symda/sweeps/ablation.py).
"""

import sys

from symda.sweeps.ablation import main

if __name__ == "__main__":
    sys.exit(main())
