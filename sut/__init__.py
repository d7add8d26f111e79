"""Scheduling and LoadGen: the system-under-test, its settings and its runs."""
