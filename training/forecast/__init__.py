"""The 13-week cash forecast of today's open A/R: fitting, rolling-origin backtest, baselines,
split-conformal intervals, training and registration.

``config`` (what to fit), ``panel`` (dates and the labelled account-week panel), ``fit``
(the boosters), ``baselines`` (liquidation curve, trailing 13-week average), ``rolling``
(forecasts at rolling origins), ``intervals`` (conformal quantiles), ``metrics`` and
``backtest`` (the figures), ``card`` and ``train`` (a registered version). The saved model and
its predict live in ``features.cash_model``, so serving never needs this package.
"""
