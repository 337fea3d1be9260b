"""Subject-independent evaluation: splits, class balance and SMOTE, leakage audit, metrics.

Pure functions over the sample table's columns (numpy); nothing here reads or writes a store.
"""
