"""Where cells run: in this process (default), in N local worker processes, or as Ray tasks.

Every executor runs the same jobs (`harness.executors.jobs`) and hands back the same outcomes;
the driver (`harness.runner`) writes every result file. See docs/scale.md.
"""
