"""Training: transfer learning on a frozen base (Teachable Machine style), demo data and the export zip."""
