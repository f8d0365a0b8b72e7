"""Side effects of a study (progress, MLflow, export, profiles, report, tuning records) as
callbacks on the trial loop; the interface they implement is tuner.study.study_callback."""
