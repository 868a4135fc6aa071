"""The service layer shared by every host (``metrosight run``, the node, the cluster worker) and by the API.

One module per service: :mod:`.installation` (home, keys, store, settings: the one start-up step), :mod:`.models`
(the face models, loaded lazily), :mod:`.matching` (operating points and matchers), :mod:`.enrolment` and
:mod:`.identification` (decoded photos in, results out), :mod:`.live_policy` (a running camera's gallery and
no-identification state), :mod:`.sinks` (storing alerts and behaviour events) and :mod:`.suite` (all of them for
one installation). Services never import a host (:mod:`metrosight.pipeline`) or the CLI.
"""
