"""symda: symmetric unsupervised domain adaptation for semantic segmentation.

Importing the package never starts Ray, reads the environment or touches the network.
"""

__version__ = "0.3.0"
