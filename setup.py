from pathlib import Path

from setuptools import Extension, find_packages, setup


def read_requirements(name):
    lines = Path(__file__).parent.joinpath('requirements', name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


version = {}
exec(Path(__file__).parent.joinpath('mimlab', 'version.py').read_text(), version)

setup(
    name='mimlab',
    version=version['__version__'],
    description='Masked image modeling pretraining (MAE, PixMIM, SimMIM, A2MIM, MixMIM) in the OpenMMLab style',
    long_description=Path(__file__).parent.joinpath('README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'configs')),
    python_requires='>=3.10',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        # WebDataset shards and Hugging Face datasets (mimlab.datasets.shards / hf): pip install mimlab[streaming]
        'streaming': read_requirements('streaming.txt'),
    },
    license='Apache-2.0',
    # the JPEG region decoder of the fast input path; optional: without a C compiler or the libjpeg(-turbo) headers
    # the build skips it and LoadImageRandomResizedCrop decodes whole images with cv2
    # (and Pillow-exact resampling, mimlab/csrc/resample.c); -ffp-contract=off keeps the filter taps' double
    # arithmetic free of fused multiply-adds, so they round as Pillow's do whatever the compiler targets
    ext_modules=[
        Extension(
            'mimlab._jpeg',
            ['mimlab/csrc/jpeg_region.c', 'mimlab/csrc/resample.c'],
            libraries=['jpeg'],
            extra_compile_args=['-O3', '-ffp-contract=off'],
            optional=True,
        )
    ],
)
