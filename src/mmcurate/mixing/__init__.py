"""Mixing: which curated samples train, in what shares and how often, sized in the tokens a model sees.

`Mix` (spec.py) is the YAML spec; `plan_mix` (plan.py) turns curated items and signal tables into one
row per sample (or part) with its repeat count; `mix_report` (report.py) sums it per bucket, before and
after. `mmcurate.steps.mix` runs them against a lakehouse.
"""
from mmcurate.mixing.spec import Mix, MixError, packaged_mixes

__all__ = ["Mix", "MixError", "packaged_mixes"]
