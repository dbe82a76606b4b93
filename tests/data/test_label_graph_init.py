"""one_hot, cooccurrence, cosine_similarity and load_word_vectors."""

import numpy as np
import pytest
import torch

from lcnet_fast.data import cooccurrence, cosine_similarity, load_word_vectors, one_hot


def test_one_hot():
    assert torch.equal(one_hot(3), torch.eye(3))
    with pytest.raises(ValueError):
        one_hot(0)


def test_cooccurrence_conditional_probability_with_ignored_labels():
    labels = torch.tensor([[1, 1, 0], [1, 0, 0], [1, -1, 1], [0, 1, 1]], dtype=torch.int8)
    a = cooccurrence(labels)
    # P(1 | 0): class 0 present in rows 0,1,2; class 1 known in rows 0,1 -> 1/2 (row 2 is ignored)
    assert a[0, 1] == pytest.approx(1 / 2)
    assert a[0, 2] == pytest.approx(1 / 3)  # rows 0,1,2 -> only row 2 has class 2
    assert a[1, 0] == pytest.approx(1 / 2)  # class 1 present in rows 0,3
    assert a[2, 1] == pytest.approx(1 / 1)  # class 2 present in rows 2,3; class 1 known only in 3
    assert torch.equal(torch.diagonal(a), torch.ones(3))
    never = cooccurrence(np.array([[0, 1], [0, 1]]))
    assert never.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="only 1, 0 and -1"):
        cooccurrence(np.array([[2, 0]]))


def test_cosine_similarity():
    e = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    s = cosine_similarity(e)
    assert s[0, 1] == pytest.approx(1.0) and s[0, 2] == pytest.approx(0.0) and s[3, 3] == 0.0


def test_glove_text_multiword_and_word2vec_header(tmp_path):
    glove = tmp_path / "g.txt"
    glove.write_text("the 9 9\ndog 1 0\ncat 0 1\ntraffic 2 0\nlight 0 2\nteddy_bear 5 5\n")
    v = load_word_vectors(str(glove), ["cat", "dog", "traffic light", "teddy bear", "Dog"])
    assert v.tolist() == [[0, 1], [1, 0], [1, 1], [5, 5], [1, 0]]
    w2v = tmp_path / "w.vec"
    w2v.write_text("3 2\ndog 1 0\ncat 0 1\nfish 3 3\n")
    assert load_word_vectors(str(w2v), ["fish"]).tolist() == [[3, 3]]


def test_missing_names_are_all_listed(tmp_path):
    glove = tmp_path / "g.txt"
    glove.write_text("dog 1 0\ntraffic 2 0\n")
    with pytest.raises(KeyError, match=r"\['unicorn', 'traffic light'\]"):
        load_word_vectors(str(glove), ["dog", "unicorn", "traffic light"])


def test_npy_pt_npz_formats(tmp_path):
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.save(tmp_path / "plain.npy", arr)
    assert load_word_vectors(str(tmp_path / "plain.npy"), ["a", "b"]).tolist() == arr.tolist()
    with pytest.raises(ValueError, match="2 rows but 3 classes"):
        load_word_vectors(str(tmp_path / "plain.npy"), ["a", "b", "c"])
    np.save(tmp_path / "named.npy", arr)
    (tmp_path / "named.classes.txt").write_text("x\ny\n")
    assert load_word_vectors(str(tmp_path / "named.npy"), ["y", "x"]).tolist() == [[3, 4], [1, 2]]
    torch.save(
        {"hair drier": torch.tensor([1.0, 1.0]), "cat": torch.tensor([0.0, 2.0])}, tmp_path / "d.pt"
    )
    assert load_word_vectors(str(tmp_path / "d.pt"), ["cat", "hair_drier"]).tolist() == [
        [0, 2],
        [1, 1],
    ]
    np.savez(tmp_path / "z.npz", cat=np.array([1.0, 0.0]))
    assert load_word_vectors(str(tmp_path / "z.npz"), ["cat"]).tolist() == [[1, 0]]
    (tmp_path / "v.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="pickle"):
        load_word_vectors(str(tmp_path / "v.pkl"), ["cat"])
