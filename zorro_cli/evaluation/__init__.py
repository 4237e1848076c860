"""Evaluation library: predictions over a dataset (``predict``), metrics (``metrics``), the table and
plots ``zorro evaluate`` shows (``report``, ``plots``), and model inputs from a media file (``inference``)."""
