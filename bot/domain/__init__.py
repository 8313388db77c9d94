"""The ticket lifecycle, the intake, remedies and signals: plain Python, no I/O."""
