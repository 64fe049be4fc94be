"""The decision policy: which next action each open balance gets, and which actions are forbidden.

Rules decide first; the model only chooses among the patient-side actions the rules allow. The
policy is a YAML file (packaged default: ``serving/policy/default.yaml``) whose ``version`` is
stamped on every recommendation. Precedence, the first rule that applies decides:

| #  | rule ids                 | when                                   | action                 |
|----|--------------------------|----------------------------------------|------------------------|
| 1  | CREDIT-1                 | open_balance < 0 (overpayment)         | refund_review          |
| 1b | ZERO-1                   | open balance is zero                   | hold                   |
| 2  | CONTRACT-1               | CO + contractual CARC, payer side      | contractual_adjustment |
| 3  | HOLD-DISPUTE, -APPEAL,   | dispute, appeal or FAP application     | hold                   |
|    | -FAP                     | open (a missing flag counts as open)   |                        |
| 4  | FAP-1                    | FAP approved, patient side             | charity_write_off      |
| 5  | DEN-1                    | current denial, correctable CARC       | resubmit               |
| 6  | DEN-2                    | appealable CARC inside the window      | appeal                 |
|    | DEN-3, DEN-5, DEN-4      | past the window, appeal lost, final    | denial_write_off       |
|    | DEN-W, DEN-6             | appeal won, CARC in no list            | follow_up              |
| 7  | STATE-XX-FPL             | state income floor (NM: 200% FPL)      | fap_screen / charity   |
| 8  | PAYER-1                  | balance still with the payer           | follow_up              |
| 9  | model (ENR-1) + gates    | patient side                           | see below              |

A denial is *current* when the balance is with the payer and no payment came after it. The
state income floor applies when ``fpl_percent`` is under it or ``presumptive_fap_eligible`` is
true (a FAP approval is rule 4): screen first, charity once a screen is recorded.

Rule 9, with ENR(action) = expected_recovery - cost_per_touch x touches(action) (agency: less
its fee), in order: MODEL-0 no score -> follow_up; SMALL-1 balance under the threshold and a
follow-up does not pay -> small_balance_write_off; FAP-SCREEN-1 probability under
``fap_screen_below_probability`` and no screen -> fap_screen; larger balance, moderate
probability, ENR > 0 -> payment_plan_offer; CYCLE-1 collection effort not yet documented ->
follow_up; then agency when it pays, else small_balance_write_off or bad_debt_write_off (BD-1).
A forbidden agency/bad debt falls back to fap_screen when the FAP screen is missing (501(r)),
else to follow_up, quoting the rule that forbade it.

Gates (``forbidden_actions``; each action keeps the first rule that forbids it): R501R-1 no
gated action (``eca_gated_actions``) before ``fap_waiting_days`` after the first statement,
R501R-2 nor without a FAP screen, R501R-3 no bad debt before ``fap_application_days``
(501(r) facilities); STATE-XX-AGENCY waiting days; EFFORT-1 collection effort documented;
MCR-BD-1 Medicare's effort; PLAN-1 a kept payment plan; PAYER-1 no patient action on a payer
balance; FAP-0, SMALL-0, DEN-0 write-offs whose category does not apply. Bad debt of Medicare
fee-for-service deductible/coinsurance (PR-1/PR-2) is claimable as Medicare bad debt
(MCR-BD-OK); other PR codes (MCR-BD-2), unknown codes (MCR-BD-4) and Medicare Advantage
(MCR-BD-3) are ordinary bad debt. STATE-XX-CREDIT and STATE-XX-INTEREST qualify an agency
placement or a plan offer.

Modules, each importing only those listed before it: ``config`` (the Policy model, YAML loading;
the packaged ``default.yaml``), ``facts`` (account facts from snapshot columns), ``row_facts``
(the same facts from one snapshot row, for the API), ``rules`` (the rules in precedence order),
``forbidden`` (what the rules forbid), ``decide`` (one account's recommendation), ``vector``
(the actions alone of a whole batch, held equal to ``decide`` by the tests) and ``recommend``
(the entry points).

Imports features and settings only; no SQLAlchemy, no scoring, nothing above.
"""
