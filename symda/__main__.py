import sys

from symda.cli import main

sys.exit(main())
