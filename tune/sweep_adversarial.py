"""How strong, and which kind of, output-space adversarial alignment? lambda_adv per level (main and
auxiliary head), the discriminators' learning rate, BCE or least-squares GAN loss:
configs/sweeps/adversarial.yaml. The translator and S'/T'/V' are built once; each trial adapts F_T
and F_S, then pseudo-labels, self-trains and evaluates.

    python tune/sweep_adversarial.py [--num-samples N] [--address HOST:PORT] [--resume] ...  (--help)
"""

import sys

from symda.sweeps.driver import main

if __name__ == "__main__":
    sys.exit(main(default_space="configs/sweeps/adversarial.yaml"))
