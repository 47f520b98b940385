"""Deduplication as annotate-then-select: stages write copy counts, clusters and keep flags; recipe rules drop.

Every stage here follows the stage contract (`mmcurate.stage`); they are not `incremental`, since a
new document can change any count, and are recomputed when their input table changes.
"""
