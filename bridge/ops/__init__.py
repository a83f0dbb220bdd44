"""Operations: the worker loop, `serve`, error reports to the admin and webhooks to the ATS."""
