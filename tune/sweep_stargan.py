"""Which StarGAN loss weights translate best for adaptation? translate.lambda_cls, lambda_rec,
lambda_gp and n_critic: configs/sweeps/stargan.yaml. Only SynthCity is built beforehand; each trial
trains its own translator and everything after it (the costliest sweep).

    python tune/sweep_stargan.py [--num-samples N] [--address HOST:PORT] [--resume] ...  (--help)
"""

import sys

from symda.sweeps.driver import main

if __name__ == "__main__":
    sys.exit(main(default_space="configs/sweeps/stargan.yaml"))
