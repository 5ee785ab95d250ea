"""The web demo: ``python app.py [--model CKPT] [--host 127.0.0.1] [--port 7860] [--share]``.

The page lives in vc/demo.py; ``vc demo`` takes the same flags.
"""
import sys

from vc.demo import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
