"""Spot-then-recognise (MEGC 2024-2025): each spotted micro-expression is cut from its long
video and classified by a recognition model trained, fold by fold, on the training subjects'
annotated micro-expressions; STRS scores the whole (``mer_prep.evaluation.strs``).

It sits above the spotters, the pipeline and the trainers: it cuts intervals into clips the
clip pipeline processes (``intervals``), trains and predicts with the recognition engine
(``recognizer``) and joins both to a spotting run (``run``)."""
