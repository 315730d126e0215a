"""What a run *is* and what its results hold: one owner for the whole project.

- :mod:`sept.runs.layout`: the run-folder layout (:class:`RunKey`, :func:`run_dir`) and file names;
- :mod:`sept.runs.identity`: a run's identity (the dataset's name and content, the method variant
  with every option that differs from the method's defaults);
- :mod:`sept.runs.schema`: the typed, versioned results schema, checked on read, and the summary
  metrics of each protocol;
- :mod:`sept.runs.store`: finished / same-config / damaged checks, preparing and finishing a folder.

The CLI, the sweep runner, the report and the analyses read runs through these modules only.
"""
