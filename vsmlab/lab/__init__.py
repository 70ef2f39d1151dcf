"""Layer 5, what the notebooks use to run studies: experiments, cache, plotting, widgets, the figure
runner, notebook helpers. Heavy optional imports (papermill, ipywidgets) stay inside functions."""
