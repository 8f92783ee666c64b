"""Behavioural tests of a model trained on the project's labels (sentences written for these tests)."""

import unicodedata

import pytest

from pipeline.model import predict, predict_articles

RESCUE = [
    "Lực lượng biên phòng đã giải cứu ba phụ nữ bị lừa bán sang biên giới, đưa các nạn nhân về nơi an toàn, hỗ trợ y tế và tâm lý.",
    "Các nạn nhân của đường dây mua bán người được tiếp nhận, hỗ trợ y tế và đưa về địa phương tái hòa nhập cộng đồng.",
]
COOPERATION = [
    "Hai bộ trưởng đã ký kế hoạch hành động chung về phòng, chống mua bán người và đưa người di cư trái phép.",
    "Công an tỉnh đã khởi tố vụ án, bắt tạm giam hai đối tượng về hành vi mua bán người.",
]
STATISTICS = [
    "Trong năm qua, cả nước phát hiện 150 vụ mua bán người với 320 nạn nhân, tăng 12% so với năm trước.",
]
FURNITURE = [
    "Xem nhiều",
    "Bài viết cùng chủ đề",
    "Theo dõi chúng tôi trên mạng xã hội",
    "Minh Anh",  # byline
    "Lượt xem: 1520",
    "Các đại biểu chụp ảnh lưu niệm tại hội nghị. (Ảnh: Thanh Hà)",  # caption
    "Giá xăng hôm nay tăng nhẹ theo giá dầu thế giới",  # a related headline
    "Đội tuyển bóng đá giành chiến thắng 2-0 trong trận giao hữu tối qua",
    "Công an tỉnh triệt phá đường dây buôn bán ma túy xuyên biên giới.",  # drugs, not people
]


EXPECTED = (
    [(t, "victim_support") for t in RESCUE]  # a rescue of trafficking victims
    + [(t, "cooperation") for t in COOPERATION]  # agreements and arrests
    + [(t, "statistics") for t in STATISTICS]  # totals over a year
    + [(t, "off_topic") for t in FURNITURE]  # bylines, captions, related headlines, other news
)


@pytest.mark.parametrize(("text", "label"), EXPECTED)
def test_paragraph_gets_its_label(trained_model, text, label):
    assert predict(trained_model, [text])[0] == [label]


@pytest.mark.parametrize("text", RESCUE + COOPERATION + FURNITURE)
def test_nfc_and_nfd_get_the_same_label_and_probabilities(trained_model, text):
    nfc_labels, nfc_proba = predict(trained_model, [unicodedata.normalize("NFC", text)])
    nfd_labels, nfd_proba = predict(trained_model, [unicodedata.normalize("NFD", text)])
    assert nfc_labels == nfd_labels
    assert nfc_proba == pytest.approx(nfd_proba)


def test_old_and_new_tone_spelling_score_the_same(trained_model):
    a = "Nạn nhân được hỗ trợ tái hoà nhập cộng đồng."
    b = "Nạn nhân được hỗ trợ tái hòa nhập cộng đồng."
    assert predict(trained_model, [a])[1] == pytest.approx(predict(trained_model, [b])[1])


def test_probabilities_sum_to_one_and_one_row_per_paragraph(trained_model):
    texts = RESCUE + FURNITURE
    (proba,) = predict_articles(trained_model, [texts])
    assert proba.shape == (len(texts), 4)
    assert proba.sum(axis=1) == pytest.approx(1.0)
