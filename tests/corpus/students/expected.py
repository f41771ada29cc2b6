"""What a careful TA gives each submission of the student corpus.

`loses`: the components that must lose points (every other component keeps full marks); empty for a correct
submission, which must score 10/10. Every bug here shows without the training tests (the contract and
reference-equality tests catch it), so CI grades without them; bench/students.py grades with them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    loses: tuple[str, ...] = ()


FULL_MARKS = Outcome()

EXPECTED: dict[str, Outcome] = {
    "ok_colab_sequential": FULL_MARKS,
    "ok_attributes_plain": FULL_MARKS,
    "ok_modulelist": FULL_MARKS,
    "ok_helpers_in_own_cells": FULL_MARKS,
    "ok_ordered_dict": FULL_MARKS,
    "ok_relu_modules_shape_checks": FULL_MARKS,
    "ok_jupytext_percent_export": FULL_MARKS,
    "ok_nbconvert_script_export": FULL_MARKS,
    "ok_fixed_in_later_cells": FULL_MARKS,
    "ok_time_magics": FULL_MARKS,
    "ok_positional_flag_and_feat_dim": FULL_MARKS,
    "ok_hyperparameter_globals": FULL_MARKS,
    "ok_import_aliases": FULL_MARKS,
    "ok_lambda_and_loss_attribute": FULL_MARKS,
    "ok_template_flags_kept_comment": FULL_MARKS,
    "ok_colab_percent_export": FULL_MARKS,
    "ok_modulelist_detach_mix": FULL_MARKS,
    "ok_ordered_dict_einsum": FULL_MARKS,
    "ok_script_export_helpers": FULL_MARKS,
    "ok_shared_relu_two_logits": FULL_MARKS,
    "ok_layer_list_requires_grad": FULL_MARKS,
    "ok_everything_in_one_notebook_style": FULL_MARKS,
    "ok_windows_tabs_future_annotations": FULL_MARKS,
    "ok_colab_gpu_hard_coded": FULL_MARKS,
    "bug_encoder_no_last_relu": Outcome(("7.1.1",)),
    "bug_decoder_no_sigmoid": Outcome(("7.1.2",)),
    "bug_train_ae_no_zero_grad": Outcome(("7.1.3",)),
    "bug_train_ae_redefined_with_l1": Outcome(("7.1.3",)),
    "bug_classifier_encoder_not_frozen": Outcome(("7.1.4",)),
    "bug_classifier_view_batch_size": Outcome(("7.1.4",)),
    "bug_classifier_supervised_encoder_idle": Outcome(("7.1.4",)),
    "bug_method_flags_swapped": Outcome(("7.1.4",)),
    "bug_report_wrong_order": Outcome(("7.1.5",)),
    "bug_head_not_normalised": Outcome(("7.2.1",)),
    "bug_head_whole_matrix_norm": Outcome(("7.2.1",)),
    "bug_clip_one_direction": Outcome(("7.2.2",)),
    "bug_clip_times_temperature": Outcome(("7.2.2",)),
    "bug_clip_detached_image_features": Outcome(("7.2.2",)),
    "bug_retrieve_ascending": Outcome(("7.2.4",)),
    "bug_retrieve_worst_first": Outcome(("7.2.4",)),
}
