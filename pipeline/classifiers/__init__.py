"""The passage classifiers, one module per approach, with the registry that builds them by
``model.kind`` and the cross-validation recipe that trains and scores them.

Every estimator keeps the scikit-learn contract: ``__init__`` only stores (flat)
parameters, ``fit(X, Y)`` learns state in attributes ending in ``_`` and returns self, and
``predict_proba(X)`` gives an ``(n, k)`` array in taxonomy label order, refusing to run
before ``fit``. ``X`` is the frame from :func:`pipeline.classify.model_frame` (columns
``text`` and ``context``); ``Y`` is an ``(n, k)`` 0/1 matrix.
"""
