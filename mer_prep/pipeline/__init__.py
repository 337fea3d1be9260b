"""One clip through a recipe's stages, and the bookkeeping of a store version around it.

``frame_selection`` (which frames a recipe reads), ``process`` (one clip through the stages),
``augment`` (recorded augmented copies), ``fingerprint`` (what a version's inputs are),
``planning`` (a dataset on disk to a version plan), ``batch`` (a worker's job: process and
write a batch of samples), ``report`` (the run's markdown summary).
"""
