"""Layer 5, what the notebooks use to run studies: experiments, the image studies, cache, plotting,
widgets, exercises, the figure runner, notebook helpers. Calls library functions, never the command line. Heavy optional imports (papermill, ipywidgets) stay inside functions."""
