"""Loading the encoder: transformers' load report about the unused pooler becomes one line."""
import logging

from nerqa_helpers.encoders import POOLER_NOTE, load_with_pooler_note


class Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def fake_load(info):
    def load():
        logging.getLogger("transformers.modeling_utils").warning("BertModel LOAD REPORT from: x\n<the table>")
        return "model", info
    return load


def test_a_pooler_only_report_becomes_one_line_and_any_other_report_stays(capsys):
    logger, keep = logging.getLogger("transformers.modeling_utils"), Keep()
    logger.addHandler(keep)
    try:
        pooler = {"unexpected_keys": ["pooler.dense.weight", "pooler.dense.bias"], "missing_keys": []}
        assert load_with_pooler_note(fake_load(pooler), "enc") == ("model", pooler)
        assert keep.messages == []
        assert capsys.readouterr().err.strip() == POOLER_NOTE.format(source="enc")
        missing = {"unexpected_keys": ["pooler.dense.weight"], "missing_keys": ["encoder.layer.0.attention.self.query.weight"]}
        load_with_pooler_note(fake_load(missing), "enc")
        assert len(keep.messages) == 1 and "LOAD REPORT" in keep.messages[0]
        assert capsys.readouterr().err == ""
    finally:
        logger.removeHandler(keep)


def test_the_bundled_encoder_loads_with_the_one_line(capfd):
    from nerqa_helpers.model import MultiTaskModel

    MultiTaskModel.from_encoder("default")
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "UNEXPECTED" not in err
    assert "pooler" in err and err.count("need not be") == 1
