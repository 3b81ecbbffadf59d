import numpy as np
import pytest

from cnnviz.sheet import contact_sheet


def test_rows_and_columns_of_squares_with_gaps():
    red = np.zeros((50, 50, 3), np.uint8)
    red[..., 0] = 255
    sheet = contact_sheet([[red, red, red], [red]], side=50, gap=4)
    assert sheet.shape == (2 * 50 + 4, 3 * 50 + 4 * 2, 3)
    assert (sheet[0, 0] == [255, 0, 0]).all() and (sheet[0, 50] == 255).all()  # a picture, then the gap
    assert (sheet[54, 54] == 255).all()  # the short second row is padded with white
    assert (sheet[54 + 49, 49] == [255, 0, 0]).all()


def test_a_wide_picture_keeps_its_shape_centred_in_its_square():
    wide = np.zeros((20, 80, 3), np.uint8)  # black, 4:1
    sheet = contact_sheet([[wide]], side=40, gap=0)
    assert sheet.shape == (40, 40, 3)
    black_rows = np.flatnonzero((sheet[:, 20] == 0).all(axis=1))
    assert list(black_rows) == list(range(15, 25))  # 10 rows high (4:1 of 40), centred


def test_grey_pictures_are_accepted_and_nothing_at_all_is_one_sentence():
    assert contact_sheet([[np.full((8, 8), 7, np.uint8)]], side=8).tolist() == np.full((8, 8, 3), 7).tolist()
    with pytest.raises(ValueError, match="at least one picture"):
        contact_sheet([[], []])
