"""spark-submit entry point: the whole pipeline on the sample data shipped in the package.

    spark-submit jobs/demo.py --out /tmp/mmcurate-demo
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
