"""Analysis of finished runs: sweep reports and plots, studies, their statistics and seed plans."""
