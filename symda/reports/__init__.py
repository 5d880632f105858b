"""Tables and plots from stored results (pandas and matplotlib; never torch): the ablation table, a
sweep's report, the validator study's table. The sweeps call them in process when they finish; the
scripts in analysis/ are their command lines."""
