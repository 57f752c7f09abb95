"""The live board: sysfs access and DVFS control with restore on exit, sensors, topology, the
load monitor and load generator, ``LiveBoard``, the profiler's measurement loop and the live
session (deploy loop), with their command lines.

Data flow: agents --(policy.npz + policy.json)--> runtime --(measured board.yaml, deploy logs)--> hwmodels.
The runtime never imports stable-baselines3; torch only for the DNN itself.
"""
