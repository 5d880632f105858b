"""The main job: which pseudo-label policy makes the best self-trained F_T?

Sweeps pseudo.threshold (global tau | per-class quantile capped), tau, quantile, cap, conf_weight and
pseudo.consistency (soft | hard) over configs/synthcity/quick.yaml: configs/sweeps/threshold.yaml.
SynthCity, the translator, S'/T'/V' and the adapted F_T, F_S are built once before the trials.

    python tune/sweep_threshold.py                    # 8 trials on a local Ray cluster (dashboard :8265)
    python tune/sweep_threshold.py --resume           # finish the latest interrupted threshold sweep
    python tune/sweep_threshold.py --select-by miou   # select by true mIoU (reads target labels) instead

Every flag: --help (symda/sweeps/driver.py).
"""

import sys

from symda.sweeps.driver import main

if __name__ == "__main__":
    sys.exit(main(default_space="configs/sweeps/threshold.yaml"))
