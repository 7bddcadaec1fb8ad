"""Routing: one public model name (a group) for several deployments.

``groups`` reads the routes file (``CHATWIRE_ROUTES_FILE``), ``router`` orders a group's
deployments by its strategy and keeps their cooldowns, in-flight counts and latencies
(shared through Redis where there is one), and ``chat`` runs a routed chat through the
pipeline's steps, deployment after deployment, until one answers.
"""
