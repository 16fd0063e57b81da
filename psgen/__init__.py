"""psgen: compile declarative remediation plans into PowerShell scripts."""

__version__ = "0.1.0"
