"""The parts of `bench/many_streams.py`: the fake upstream, the load generator,
the harness that runs and measures them, and the report."""
