"""Evaluation library: predictions over a dataset (``predict``), metrics (``metrics``), the tables and
plots ``zorro evaluate`` and ``zorro predict`` show (``report``, ``plots``), model inputs from a media file
(``inference``), the PyTorch and ONNX models predict runs (``runners``) and the files it is given (``files``)."""
