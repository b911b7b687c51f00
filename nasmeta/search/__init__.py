"""The one search loop: searchers propose, schedulers decide (continue / pause / stop), evaluators train or look
up, the reporter carries results out; search methods register with ``@search_method`` (``registry``).

Nothing heavy is imported here: ``from nasmeta.search.loop import run_search`` etc.
"""
