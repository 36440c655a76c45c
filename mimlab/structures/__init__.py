from .data_sample import DataSample, stack_sample_fields

__all__ = ['DataSample', 'stack_sample_fields']
