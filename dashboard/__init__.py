"""The dashboard's own pages: home (what needs attention), a team, a service, and search.

They compose the other apps' public pieces (their models, `<app>/services.py`, and their
partial templates); `live.py` pushes the sections they own, coalesced per window.
"""
