"""Datasets: CustomDataset / ImageNet on real image trees the tests write, and the built-in procedural dataset."""

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from mmengine.dataset import default_collate
from PIL import Image

from mimlab.datasets import BuiltinDataset, CustomDataset, ImageNet, write_builtin_dataset
from mimlab.datasets.builtin import class_names
from mimlab.registry import DATASETS

NAMES = class_names(10)
FOLDERS = tuple(f'{i:02d}_{n}' for i, n in enumerate(NAMES))


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """The built-in dataset written as JPEGs: train/ (30), val/ (10), meta/{train,val}.txt."""
    root = tmp_path_factory.mktemp('imagenet')
    write_builtin_dataset(str(root), num_train=30, num_val=10, img_size=24, fmt='jpg')
    return root


def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def _labels_by_file(ds):
    return {info['img_path']: info['gt_label'] for info in _infos(ds)}


# --------------------------------------------------------------------------------------- folders and ann files
def test_folder_scan_sorted_classes_labels_and_order(tree):
    ds = CustomDataset(data_root=str(tree), data_prefix='train')
    assert ds.metainfo['classes'] == FOLDERS
    infos = _infos(ds)
    assert len(infos) == 30
    paths = [d['img_path'] for d in infos]
    assert paths == sorted(paths)  # folder-major, then file name: deterministic everywhere
    for d in infos:  # label = index of the folder; sample i of the built-in train split has label i % 10
        folder, file = d['img_path'].split('/')[-2:]
        assert d['gt_label'] == FOLDERS.index(folder) == int(file[-10:-4]) % 10
    assert set(infos[0]) == {'img_path', 'gt_label', 'sample_idx'}


def test_ann_file_gives_the_same_samples_as_the_folder_scan(tree):
    ann = ImageNet(data_root=str(tree), split='train')
    assert ann.ann_file == str(tree / 'meta' / 'train.txt') and ann.data_prefix['img_path'] == str(tree / 'train')
    assert 'classes' not in ann.metainfo or ann.metainfo['classes'] is None  # an ann file names no classes
    folders = CustomDataset(data_root=str(tree), data_prefix='train')
    assert _labels_by_file(ann) == _labels_by_file(folders)
    # ImageNet without meta/val.txt scans the folders.
    (tree / 'meta' / 'val.txt').rename(tree / 'meta' / 'val.bak')
    try:
        val = ImageNet(data_root=str(tree), split='val')
    finally:
        (tree / 'meta' / 'val.bak').rename(tree / 'meta' / 'val.txt')
    assert val.ann_file == '' and len(val) == 10 and val.metainfo['classes'] == FOLDERS


def test_ann_file_paths_labels_and_unlabelled_lines(tree, tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text(f'{FOLDERS[3]}/{NAMES[3]}_000003.jpg 7\n\n{FOLDERS[1]}/{NAMES[1]}_000011.jpg 2\n')
    ds = CustomDataset(data_prefix=str(tree / 'train'), ann_file=str(ann), metainfo=dict(classes=NAMES))
    assert [(d['img_path'], d['gt_label']) for d in _infos(ds)] == [
        (str(tree / 'train' / FOLDERS[3] / f'{NAMES[3]}_000003.jpg'), 7),  # the file's label, not the folder's
        (str(tree / 'train' / FOLDERS[1] / f'{NAMES[1]}_000011.jpg'), 2),
    ]
    assert ds.metainfo['classes'] == NAMES
    ann.write_text(f'{FOLDERS[0]}/{NAMES[0]}_000000.jpg\n')
    ds = CustomDataset(data_root=str(tree), data_prefix='train', ann_file=str(ann), with_label=False)
    assert _infos(ds) == [dict(img_path=str(tree / 'train' / FOLDERS[0] / f'{NAMES[0]}_000000.jpg'), sample_idx=0)]


def test_unlabelled_folder_scan_and_test_split(tree, tmp_path):
    ds = CustomDataset(data_root=str(tree), data_prefix='val', with_label=False)
    assert len(ds) == 10 and all('gt_label' not in d for d in _infos(ds))
    (tmp_path / 'test' / 'a').mkdir(parents=True)
    for name in ('2.png', '1.PNG', 'a/0.webp', 'notes.txt'):
        (tmp_path / 'test' / name).write_bytes(b'')
    test = ImageNet(data_root=str(tmp_path), split='test')  # no meta/test.txt: every image at any depth
    assert [d['img_path'][len(str(tmp_path)) :] for d in _infos(test)] == [
        '/test/1.PNG',
        '/test/2.png',
        '/test/a/0.webp',
    ]
    assert 'gt_label' not in test.get_data_info(0)


def test_metainfo_classes_against_folders(tree):
    prefix = dict(data_root=str(tree), data_prefix='train')
    reordered = FOLDERS[::-1]
    ds = CustomDataset(**prefix, metainfo=dict(classes=reordered))  # the folder names: labels follow metainfo
    assert ds.metainfo['classes'] == reordered
    assert all(d['gt_label'] == reordered.index(d['img_path'].split('/')[-2]) for d in _infos(ds))
    display = tuple(f'class {i}' for i in range(10))  # other names, as many as folders: they rename sorted folders
    assert _labels_by_file(CustomDataset(**prefix, metainfo=dict(classes=display))) == _labels_by_file(
        CustomDataset(**prefix)
    )
    with pytest.raises(ValueError, match='metainfo has 3 classes but .* 10 class folders'):
        CustomDataset(**prefix, metainfo=dict(classes=('a', 'b', 'c')))


def test_built_through_the_registry_with_lazy_init(tree, tmp_path):
    ds = DATASETS.build(dict(type='ImageNet', data_root=str(tree), split='val', pipeline=[dict(type='PackInputs')]))
    assert isinstance(ds, ImageNet) and len(ds) == 10
    lazy = CustomDataset(data_root=str(tmp_path / 'not_yet'), lazy_init=True)  # nothing is read yet
    with pytest.raises(FileNotFoundError, match='not_yet'):
        lazy.full_init()


# ------------------------------------------------------------------------------------------------------ errors
def test_missing_paths_name_the_path_and_the_config_key(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_root '.*no_such_imagenet' does not exist"):
        ImageNet(data_root=str(tmp_path / 'no_such_imagenet'), split='train')
    with pytest.raises(FileNotFoundError, match=r"image folder '.*/nope'.*data_prefix"):
        CustomDataset(data_root=str(tree), data_prefix='nope')
    with pytest.raises(FileNotFoundError, match=r"ann_file '.*meta/missing.txt' does not exist"):
        CustomDataset(data_root=str(tree), data_prefix='train', ann_file='meta/missing.txt')
    with pytest.raises(FileNotFoundError, match='set data_root and/or data_prefix'):
        CustomDataset()


def test_empty_folders_are_errors(tmp_path):
    with pytest.raises(ValueError, match='no class folders'):
        CustomDataset(data_root=str(tmp_path))
    (tmp_path / 'cat').mkdir()
    (tmp_path / 'cat' / 'readme.txt').write_text('not an image')
    with pytest.raises(ValueError, match='no images with suffix'):
        CustomDataset(data_root=str(tmp_path))
    with pytest.raises(ValueError, match='no images with suffix'):
        CustomDataset(data_root=str(tmp_path), with_label=False)
    (tmp_path / 'meta.txt').write_text('\n\n')
    with pytest.raises(ValueError, match='lists no images'):
        CustomDataset(data_root=str(tmp_path), ann_file='meta.txt')


@pytest.mark.parametrize('bad', ['no_label.jpg', 'a.jpg cat', 'a.jpg -1', 'a.jpg 10'])
def test_bad_annotation_line_names_file_and_line(tree, tmp_path, bad):
    (tmp_path / 'train').symlink_to(tree / 'train')
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text(f'{FOLDERS[0]}/{NAMES[0]}_000000.jpg 0\n{bad}\n')
    with pytest.raises(ValueError, match=r'meta/train.txt:2: '):
        ImageNet(data_root=str(tmp_path), split='train', metainfo=dict(classes=NAMES))


def test_unreadable_image_error_names_index_and_file(tmp_path):
    (tmp_path / 'cls').mkdir()
    (tmp_path / 'cls' / 'broken.jpg').write_bytes(b'this is not a jpeg')
    ds = CustomDataset(data_root=str(tmp_path), pipeline=[dict(type='LoadImageFromFile')])
    with pytest.raises(RuntimeError, match=r'CustomDataset\[0\] .*cls/broken\.jpg'):
        ds[0]


def test_file_pipeline_end_to_end(tree):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=16),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs'),
    ]
    ds = ImageNet(data_root=str(tree), split='val', pipeline=pipeline)
    batch = default_collate([ds[i] for i in range(4)])
    assert batch['inputs'].shape == (4, 3, 16, 16)
    assert [s.gt_label.item() for s in batch['data_samples']] == [ds.get_data_info(i)['gt_label'] for i in range(4)]
    assert batch['data_samples'][0].img_path.endswith('.jpg') and batch['data_samples'][0].ori_shape == (24, 24)


# ---------------------------------------------------------------------------------------------- built-in data
def test_builtin_is_deterministic_and_split_and_seed_dependent():
    a = BuiltinDataset(split='train', num_samples=40, img_size=32, seed=3)
    b = BuiltinDataset(split='train', num_samples=40, img_size=32, seed=3)
    img, label = a.render(7)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3) and label == 7
    assert img.tobytes() == b.render(7)[0].tobytes() == a[7]['img'].tobytes()
    for other in (dict(split='val', seed=3), dict(split='test', seed=3), dict(split='train', seed=4)):
        assert not np.array_equal(img, BuiltinDataset(num_samples=40, img_size=32, **other).render(7)[0])


def test_builtin_golden_pixel_sums():
    """The demo numbers in docs/evaluation.md were measured on these images; a drawing change shows up here.

    The tolerance absorbs last-ulp differences of numpy's maths across platforms (a few edge pixels), not a change.
    """
    ds = BuiltinDataset(split='train', num_samples=20, img_size=48, seed=0)
    sums = [int(ds.render(i)[0].astype(np.int64).sum()) for i in (0, 7, 19)]
    np.testing.assert_allclose(sums, [1245159, 1083775, 878789], rtol=2e-3)
    val = BuiltinDataset(split='val', img_size=32, seed=1)
    np.testing.assert_allclose(
        [int(val.render(i)[0].astype(np.int64).sum()) for i in range(3)], [495809, 374604, 376413], rtol=2e-3
    )


def test_builtin_grey_colours_keep_the_drawing():
    """``colours='grey'`` replaces the colours only: same labels, shapes and noise, a background of 30 and a shape of
    225 in every channel."""
    for i in (0, 7, 13):
        col, label = BuiltinDataset(img_size=48, seed=0).render(i)
        grey, grey_label = BuiltinDataset(img_size=48, seed=0, colours='grey').render(i)
        assert grey_label == label
        g = grey.astype(np.int16)
        bg, fg = (g < 80).all(-1), (g > 175).all(-1)  # noise std 6; the texture's second colour is 98
        assert bg.mean() > 0.3 and fg.sum() > 20
        assert abs(g[bg].mean() - 30) < 1.5 and abs(g[fg].mean() - 225) < 1.5
        # The same noise: on the background the random-colour image differs from the grey one by one constant per
        # channel (up to the float -> uint8 rounding), where neither is clipped.
        diff = col.astype(np.int16)[bg] - g[bg]
        for c in range(3):
            kept = (col[bg][:, c] > 0) & (col[bg][:, c] < 255)
            assert kept.sum() > 100 and np.ptp(diff[kept, c]) <= 2
    with pytest.raises(ValueError, match='colours'):
        BuiltinDataset(colours='gray')


def test_builtin_results_labels_and_classes():
    ds = BuiltinDataset(split='val', num_samples=53, img_size=16, pipeline=[dict(type='PackInputs')])
    info = ds.get_data_info(12)
    assert set(info) == {'render_idx', 'gt_label', 'sample_idx', 'img', 'img_shape', 'ori_shape'}
    assert info['img_shape'] == info['ori_shape'] == (16, 16) and info['gt_label'] == 2 and info['sample_idx'] == 12
    labels = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    assert np.bincount(labels).tolist() == [6, 6, 6] + [5] * 7  # balanced: counts differ by at most one
    packed = ds[12]  # no LoadImageFromFile: the image is already in the results
    assert packed['inputs'].shape == (3, 16, 16) and packed['data_samples'].gt_label.tolist() == [2]
    assert ds.metainfo['classes'] == NAMES
    assert NAMES[4:7] == ('cross_solid', 'disc_stripes', 'square_stripes')  # label k: shape k % 5, texture k // 5
    twenty = class_names(20)
    assert len(set(twenty)) == 20 and twenty[-1] == 'cross_dots'
    twenty_ds = BuiltinDataset(num_samples=40, num_classes=20, img_size=8)
    assert sorted({twenty_ds.render(i)[1] for i in range(40)}) == list(range(20))
    with pytest.raises(ValueError, match='num_classes'):
        BuiltinDataset(num_classes=21)
    with pytest.raises(ValueError, match='split'):
        BuiltinDataset(split='holdout')


def test_builtin_subset_renders_the_listed_samples():
    """mmengine's ``indices`` renumbers ``sample_idx``; the image and label must still belong together."""
    full = BuiltinDataset(num_samples=30, img_size=16)
    sub = BuiltinDataset(num_samples=30, img_size=16, indices=[5, 17])
    assert len(sub) == 2
    info = sub.get_data_info(1)
    assert info['sample_idx'] == 1 and info['gt_label'] == 7
    assert np.array_equal(info['img'], full.render(17)[0])
    lazy = BuiltinDataset(num_samples=30, img_size=16, lazy_init=True)
    assert not lazy._fully_initialized and np.array_equal(lazy[3]['img'], full.render(3)[0])


def test_builtin_cache_gives_the_rendered_images_as_copies():
    """Each process keeps what it rendered; callers get copies, so a transform writing into its input is harmless."""
    import pickle

    ds = BuiltinDataset(num_samples=12, img_size=16, indices=[2, 9, 11])
    assert ds.cache  # 12 x 16 x 16 x 3 bytes: under the automatic limit
    first = [ds[i]['img'] for i in range(3)]
    assert ds._rendered.sum() == 3 and ds._rendered[[2, 9, 11]].all()
    for img, ridx in zip(first, (2, 9, 11)):
        assert np.array_equal(img, ds.render(ridx)[0])
        img[:] = 0  # what an in-place transform would do
    assert all(np.array_equal(ds[i]['img'], ds.render(r)[0]) for i, r in enumerate((2, 9, 11)))
    clone = pickle.loads(pickle.dumps(ds))  # spawned workers: an empty cache, the same images
    assert clone._images is None and np.array_equal(clone[1]['img'], ds.render(9)[0])
    off = BuiltinDataset(num_samples=12, img_size=16, cache=False)
    assert not off.cache and np.array_equal(off[4]['img'], ds.render(4)[0]) and off._images is None
    big = BuiltinDataset(num_samples=2000, img_size=224, lazy_init=True)
    assert not big.cache  # 301 MB of images: over the automatic limit, rendered on every access


def test_builtin_render_speed():
    """Vectorised rendering: 0.3 ms per 64 px image on the reference CPU; the bound leaves room for a busy machine."""
    ds = BuiltinDataset(num_samples=100, img_size=64, lazy_init=True)
    ds.render(0)
    start = time.perf_counter()
    for i in range(100):
        ds.render(i)
    assert (time.perf_counter() - start) / 100 < 3e-3


def test_builtin_classes_need_structure_not_colour():
    """Nearest-centroid on mean colour or on 8x8 pixels is at chance (10%); on colour-invariant edge statistics
    (gradient-magnitude histogram, sorted edge projections) it is well above, so the labels are learnable."""
    train = BuiltinDataset(split='train', num_samples=600, img_size=32, lazy_init=True)
    val = BuiltinDataset(split='val', num_samples=300, img_size=32, lazy_init=True)

    def images(ds):
        return np.stack([ds.render(i)[0] for i in range(ds.num_samples)]).astype(np.float32)  # (N, S, S, 3)

    def edge_features(x):
        gray = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)
        mag = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        mag /= mag.max() + 1e-6  # contrast invariance
        edge = mag > 0.3
        # Sorted projections: invariant to where the shape sits.
        return np.concatenate(
            [np.histogram(mag, 16, (0, 1))[0] / mag.size, np.sort(edge.mean(0)), np.sort(edge.mean(1))]
        )

    def pixel_features(x):
        return cv2.resize(x, (8, 8), interpolation=cv2.INTER_AREA).reshape(-1)  # (S, S, 3) -> (192,)

    features = dict(colour=lambda x: x.mean((0, 1)), pixels=pixel_features, edges=edge_features)
    xtr, xva = images(train), images(val)
    ytr, yva = np.arange(600) % 10, np.arange(300) % 10
    acc = {}
    for name, fn in features.items():
        ftr, fva = np.stack([fn(x) for x in xtr]), np.stack([fn(x) for x in xva])  # (N, F)
        mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
        ftr, fva = (ftr - mu) / sd, (fva - mu) / sd
        centroids = np.stack([ftr[ytr == c].mean(0) for c in range(10)])  # (10, F)
        pred = ((fva[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        acc[name] = (pred == yva).mean()
    assert acc['colour'] < 0.17 and acc['pixels'] < 0.17, acc
    assert acc['edges'] > 0.25, acc


# ------------------------------------------------------------------------------------------------ writer tool
def test_make_builtin_dataset_tool(tmp_path, repo_root):
    out = tmp_path / 'builtin'
    args = ['--num-train', '12', '--num-val', '4', '--img-size', '24', '--num-classes', '12', '--seed', '5']
    subprocess.run([sys.executable, 'tools/misc/make_builtin_dataset.py', str(out), *args], check=True, cwd=repo_root)
    names = class_names(12)
    train = (out / 'meta' / 'train.txt').read_text().splitlines()
    assert train == [f'{i:02d}_{names[i]}/{names[i]}_{i:06d}.png {i}' for i in range(12)]
    assert len((out / 'meta' / 'val.txt').read_text().splitlines()) == 4
    assert len(list((out / 'val').rglob('*.png'))) == 4
    ref = BuiltinDataset(split='train', num_samples=12, img_size=24, num_classes=12, seed=5)
    path = out / 'train' / f'11_{names[11]}' / f'{names[11]}_000011.png'
    # PNG is lossless and the file was written by another process: exactly the rendered BGR image.
    assert np.array_equal(cv2.imread(str(path)), ref.render(11)[0])
    assert np.array_equal(np.asarray(Image.open(path)), ref.render(11)[0][..., ::-1])  # RGB readers see RGB


def test_write_builtin_dataset_jpeg(tmp_path):
    counts = write_builtin_dataset(str(tmp_path), num_train=10, num_val=0, img_size=32, fmt='jpg', quality=95)
    assert counts == {'train': 10, 'val': 0}
    assert (tmp_path / 'meta' / 'val.txt').read_text() == ''
    img = cv2.imread(str(tmp_path / 'train' / FOLDERS[4] / f'{NAMES[4]}_000004.jpg'))
    ref = BuiltinDataset(num_samples=10, img_size=32).render(4)[0]
    assert img.shape == ref.shape and np.abs(img.astype(int) - ref).mean() < 8  # lossy but close
    with pytest.raises(ValueError, match='fmt'):
        write_builtin_dataset(str(tmp_path), fmt='gif')
